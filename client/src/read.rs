//! Reading a manifest file (or standard input, `-`) with a size limit, for `nanocl apply`
//! and the deploy-directory sync alike.

use std::fs;
use std::io::Read;
use std::path::Path;

/// Largest file read. A single document is limited to 3 MiB by the decoder; a file may hold
/// several.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// The bytes of `path` (`-`: standard input), or a one-line error naming it.
pub fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    let too_big = || {
        format!(
            "{}: file is larger than the {} MiB limit",
            path.display(),
            MAX_FILE_BYTES >> 20
        )
    };
    let mut bytes = Vec::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        match fs::metadata(path) {
            Ok(meta) if meta.len() > MAX_FILE_BYTES => return Err(too_big()),
            Ok(_) => {}
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        }
        fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
    };
    result.map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}
