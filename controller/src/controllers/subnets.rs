//! nanocl's own address pool for the Docker networks of Clusters and Networks (those without
//! an explicit `subnet`): Docker's default pools hold about 31 bridges, nanocl's default holds
//! 1,024.
//!
//! A subnet is claimed in the store (`meta/subnets/{address}-{prefix}` → the owner's key)
//! with a create, so two reconciles (or two nanocld) never take the same one; a candidate
//! that overlaps a route or address of the host or any existing Docker network is skipped.
//! The claim is released when the owner's Docker network is removed, and by the garbage
//! collector when the owner is gone.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::store::{Store, StoreError};

/// Store prefix of the claims.
pub const PREFIX: &str = "meta/subnets/";

/// An IPv4 network: address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: u32,
    prefix: u8,
}

impl Ipv4Net {
    /// `addr/prefix`, if `addr` has no bits below the prefix.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        let net = Ipv4Net {
            addr: u32::from(addr),
            prefix,
        };
        (prefix <= 32 && net.addr & !net.mask() == 0).then_some(net)
    }

    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    fn last(self) -> u32 {
        self.addr | !self.mask()
    }

    /// Whether the two share any address.
    pub fn overlaps(self, other: Ipv4Net) -> bool {
        self.addr <= other.last() && other.addr <= self.last()
    }

    /// Whether `other` lies inside this one.
    pub fn contains(self, other: Ipv4Net) -> bool {
        other.prefix >= self.prefix && other.addr & self.mask() == self.addr
    }

    fn key(self) -> String {
        format!("{PREFIX}{}-{}", Ipv4Addr::from(self.addr), self.prefix)
    }

    fn from_key(key: &str) -> Option<Ipv4Net> {
        let (addr, prefix) = key.strip_prefix(PREFIX)?.split_once('-')?;
        Ipv4Net::new(addr.parse().ok()?, prefix.parse().ok()?)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR notation (e.g. 10.208.0.0/14)"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} in {s:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("/{prefix} in {s:?} is not a prefix length (0 to 32)"))?;
        Ipv4Net::new(addr, prefix).ok_or_else(|| {
            format!("{s:?} has host bits set: the network is {}", {
                let mask = if prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(prefix))
                };
                Ipv4Net {
                    addr: u32::from(addr) & mask,
                    prefix,
                }
            })
        })
    }
}

/// The pool: a range carved into subnets of one size (`--network-pool CIDR[/SIZE]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    range: Ipv4Net,
    size: u8,
}

/// The default pool: 10.208.0.0/14 in /24s, 1,024 networks of 254 addresses each, away from
/// Docker's own defaults (172.17.0.0/12, 192.168.0.0/16) and the 10.0.x and 10.1.x ranges
/// home and office routers favour.
pub const DEFAULT_POOL: &str = "10.208.0.0/14/24";

impl Default for Pool {
    fn default() -> Self {
        Pool {
            range: Ipv4Net {
                addr: u32::from(Ipv4Addr::new(10, 208, 0, 0)),
                prefix: 14,
            },
            size: 24,
        }
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.range, self.size)
    }
}

impl FromStr for Pool {
    type Err = String;

    /// `CIDR` (subnets of /24, or the range itself when smaller) or `CIDR/SIZE`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (range, size) = match s.matches('/').count() {
            1 => (s, None),
            2 => {
                let (range, size) = s.rsplit_once('/').unwrap_or((s, ""));
                (range, Some(size))
            }
            _ => return Err(format!("{s:?} is not CIDR[/SIZE], e.g. {DEFAULT_POOL}")),
        };
        let range: Ipv4Net = range.parse()?;
        let size = match size {
            None => range.prefix.max(24),
            Some(size) => size
                .parse::<u8>()
                .map_err(|_| format!("/{size} in {s:?} is not a subnet size (a prefix length)"))?,
        };
        if size < range.prefix || size > 29 {
            return Err(format!(
                "subnet size /{size} in {s:?} must be between the range's /{} and /29",
                range.prefix
            ));
        }
        Ok(Pool { range, size })
    }
}

/// No subnet of the pool is free.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the network pool {pool} has no free subnet ({claimed} claimed by nanocl, {taken} overlap networks of the host or of Docker); delete unused clusters or networks, or start nanocld with a larger --network-pool")]
pub struct Exhausted {
    /// The pool.
    pub pool: String,
    /// Subnets claimed.
    pub claimed: usize,
    /// Subnets skipped because they overlap something else.
    pub taken: usize,
}

/// Why a claim failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Nothing free.
    #[error(transparent)]
    Exhausted(#[from] Exhausted),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Pool {
    /// The subnets of the pool, in order.
    fn subnets(self) -> impl Iterator<Item = Ipv4Net> {
        let step = 1u64 << (32 - u32::from(self.size));
        let count = 1u64 << (self.size - self.range.prefix);
        let base = u64::from(self.range.addr);
        (0..count).filter_map(move |i| {
            let addr = u32::try_from(base + i * step).ok()?;
            Some(Ipv4Net {
                addr,
                prefix: self.size,
            })
        })
    }

    /// Whether `net` lies in the pool.
    pub fn contains(self, net: Ipv4Net) -> bool {
        self.range.contains(net)
    }

    /// The subnet claimed for `owner` (a store key), claiming the first free one when it
    /// has none. `in_use`: the host's and Docker's networks, never handed out.
    pub async fn claim<S: Store>(
        self,
        store: &S,
        owner: &str,
        in_use: &[Ipv4Net],
    ) -> Result<Ipv4Net, ClaimError> {
        let claims = store.list(PREFIX).await?.items;
        if let Some(mine) = claims
            .iter()
            .find(|kv| kv.value == owner.as_bytes())
            .and_then(|kv| Ipv4Net::from_key(&kv.key))
        {
            return Ok(mine);
        }
        let claimed: std::collections::HashSet<&str> =
            claims.iter().map(|kv| kv.key.as_str()).collect();
        let mut taken = 0;
        for candidate in self.subnets() {
            if claimed.contains(candidate.key().as_str()) {
                continue;
            }
            if in_use.iter().any(|u| u.overlaps(candidate)) {
                taken += 1;
                continue;
            }
            match store
                .create(&candidate.key(), owner.as_bytes().to_vec())
                .await
            {
                Ok(_) => return Ok(candidate),
                // Claimed meanwhile by another reconcile: the next one.
                Err(StoreError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Exhausted {
            pool: self.to_string(),
            claimed: claimed.len(),
            taken,
        }
        .into())
    }

    /// Records that `owner` holds `net` (a network that already exists, e.g. after a
    /// restart), unless it is claimed already. `false` when another owner holds it.
    pub async fn adopt<S: Store>(
        self,
        store: &S,
        owner: &str,
        net: Ipv4Net,
    ) -> Result<bool, StoreError> {
        if !self.contains(net) {
            return Ok(true);
        }
        match store.create(&net.key(), owner.as_bytes().to_vec()).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists { current, .. }) => Ok(current.value == owner.as_bytes()),
            Err(e) => Err(e),
        }
    }
}

/// Releases every subnet `owner` holds.
pub async fn release<S: Store>(store: &S, owner: &str) -> Result<(), StoreError> {
    for kv in store.list(PREFIX).await?.items {
        if kv.value == owner.as_bytes() {
            match store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(_) | Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Releases the claims whose owner `exists` says is gone (decodable or not).
pub async fn collect<S: Store>(store: &S, exists: impl Fn(&str) -> bool) -> Result<(), StoreError> {
    for kv in store.list(PREFIX).await?.items {
        let owner = String::from_utf8_lossy(&kv.value);
        if !exists(&owner) {
            tracing::info!(subnet = %kv.key, %owner, "releasing the subnet of a network whose owner is gone");
            match store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(_) | Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// The networks no subnet may overlap: the host's routes and every Docker network's subnets
/// (IPv6 ones aside: the pool is IPv4).
pub async fn in_use<D: crate::docker::Docker>(
    docker: &D,
) -> Result<Vec<Ipv4Net>, crate::docker::DockerError> {
    let mut used = host_routes();
    for network in docker.list_networks(&[]).await? {
        used.extend(
            network
                .subnets
                .iter()
                .filter_map(|s| s.parse::<Ipv4Net>().ok()),
        );
    }
    Ok(used)
}

/// What a controller does about a Docker network's subnet.
#[derive(Debug)]
pub enum Assigned {
    /// Use this one (claimed for the owner, or given in its spec).
    Subnet(String),
    /// The pool is exhausted: the status says so.
    Exhausted(Exhausted),
}

/// The subnet for a new Docker network of `owner` (a store key): `explicit` when the spec
/// gives one, else one claimed from the pool.
pub async fn assign<S: Store, D: crate::docker::Docker>(
    pool: Pool,
    store: &S,
    docker: &D,
    owner: &str,
    explicit: Option<&str>,
) -> Result<Assigned, super::ReconcileError> {
    if let Some(subnet) = explicit {
        return Ok(Assigned::Subnet(subnet.to_owned()));
    }
    let used = in_use(docker).await?;
    match pool.claim(store, owner, &used).await {
        Ok(net) => Ok(Assigned::Subnet(net.to_string())),
        Err(ClaimError::Exhausted(e)) => Ok(Assigned::Exhausted(e)),
        Err(ClaimError::Store(e)) => Err(e.into()),
    }
}

/// Records the subnet of `owner`'s existing Docker network as its claim (after a restart, or
/// a network made before the pool), and answers it for the status.
pub async fn adopt_existing<S: Store>(
    pool: Pool,
    store: &S,
    owner: &str,
    subnets: &[String],
) -> Result<Option<String>, StoreError> {
    let Some(first) = subnets.first() else {
        return Ok(None);
    };
    if let Ok(net) = first.parse::<Ipv4Net>() {
        if !pool.adopt(store, owner, net).await? {
            tracing::warn!(%owner, subnet = %net, "the subnet of this Docker network is claimed by another owner");
        }
    }
    Ok(Some(first.clone()))
}

/// The IPv4 networks the host routes (`/proc/net/route`: every interface's connected
/// networks and every route, the default route aside).
pub fn host_routes() -> Vec<Ipv4Net> {
    let Ok(table) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    parse_routes(&table)
}

fn parse_routes(table: &str) -> Vec<Ipv4Net> {
    // The kernel prints each address as the native integer over its network-order bytes.
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| u32::from_be_bytes(v.to_ne_bytes()))
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (dest, mask) = (hex(fields.get(1)?)?, hex(fields.get(7)?)?);
            let prefix = u8::try_from(mask.count_ones()).ok()?;
            (prefix > 0).then_some(Ipv4Net {
                addr: dest & mask,
                prefix,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddedOptions, EmbeddedStore};

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("a network")
    }

    #[test]
    fn pools_should_parse_with_clear_errors() {
        assert_eq!(DEFAULT_POOL.parse::<Pool>(), Ok(Pool::default()));
        assert_eq!(Pool::default().subnets().count(), 1024);
        let small: Pool = "10.250.0.0/27/29".parse().expect("pool");
        assert_eq!(
            small.subnets().map(|n| n.to_string()).collect::<Vec<_>>(),
            [
                "10.250.0.0/29",
                "10.250.0.8/29",
                "10.250.0.16/29",
                "10.250.0.24/29"
            ]
        );
        assert_eq!("10.250.0.0/16".parse::<Pool>().map(|p| p.size), Ok(24));
        assert!("10.250.0.1/16"
            .parse::<Pool>()
            .unwrap_err()
            .contains("host bits set: the network is 10.250.0.0/16"));
        assert!("10.250.0.0/16/12"
            .parse::<Pool>()
            .unwrap_err()
            .contains("between"));
        assert!("10.250.0.0".parse::<Pool>().unwrap_err().contains("CIDR"));
        assert!("10.250.0.0/16/30"
            .parse::<Pool>()
            .unwrap_err()
            .contains("/29"));
    }

    #[test]
    fn overlap_should_be_symmetric_and_exact() {
        assert!(net("10.0.0.0/8").overlaps(net("10.1.2.0/24")));
        assert!(net("10.1.2.0/24").overlaps(net("10.0.0.0/8")));
        assert!(!net("10.1.2.0/24").overlaps(net("10.1.3.0/24")));
        assert!(net("10.208.0.0/14").contains(net("10.211.255.0/24")));
        assert!(!net("10.208.0.0/14").contains(net("10.212.0.0/24")));
    }

    #[test]
    fn routes_should_be_read_from_the_kernel_table() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(
            parse_routes(table),
            vec![net("192.168.0.0/24"), net("172.17.0.0/16")],
            "the default route is no network"
        );
    }

    #[tokio::test]
    async fn claims_should_be_unique_skip_what_is_in_use_and_run_out_clearly() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        let pool: Pool = "10.250.0.0/27/29".parse().expect("pool");
        let in_use = [net("10.250.0.8/30")];
        let a = pool
            .claim(&store, "clusters/a/x", &in_use)
            .await
            .expect("a");
        assert_eq!(a, net("10.250.0.0/29"));
        assert_eq!(
            pool.claim(&store, "clusters/a/x", &in_use)
                .await
                .expect("again"),
            a,
            "the same owner keeps its subnet"
        );
        let b = pool
            .claim(&store, "clusters/a/y", &in_use)
            .await
            .expect("b");
        assert_eq!(
            b,
            net("10.250.0.16/29"),
            "10.250.0.8/29 overlaps a host route"
        );
        pool.claim(&store, "clusters/a/z", &in_use)
            .await
            .expect("c");
        match pool.claim(&store, "clusters/a/w", &in_use).await {
            Err(ClaimError::Exhausted(e)) => {
                assert_eq!((e.claimed, e.taken), (3, 1));
                assert!(
                    e.to_string()
                        .contains("10.250.0.0/27/29 has no free subnet"),
                    "{e}"
                );
            }
            other => panic!("exhausted, got {other:?}"),
        }
        release(&store, "clusters/a/y").await.expect("release");
        assert_eq!(
            pool.claim(&store, "clusters/a/w", &in_use)
                .await
                .expect("freed"),
            b
        );
        collect(&store, |owner| owner != "clusters/a/x")
            .await
            .expect("gc");
        assert!(
            !pool.adopt(&store, "clusters/a/q", b).await.expect("adopt"),
            "held by another"
        );
        assert!(
            pool.adopt(&store, "clusters/a/q", a).await.expect("adopt"),
            "released by the gc"
        );
    }
}
