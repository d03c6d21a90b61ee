//! `GET /images/export?name=IMAGE`: an image this store's builder made, as the tar stream of
//! `docker save`, from this nanocld's Docker: how the agents of other nodes get a built
//! image without a registry (`controllers::build::fetch`). Only images labelled as built
//! by this store are served, never anything else of the host.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::status::ApiError;
use super::App;
use crate::controllers::build::BUILT_LABEL;
use crate::docker::{Docker, Engine};
use crate::store::Store;

/// The query: which image.
#[derive(Debug, serde::Deserialize)]
pub struct Export {
    /// The image's name (`nanocl.local/…:…`).
    pub name: String,
}

/// Streams the image.
pub async fn export<S: Store + Clone>(
    State(app): State<Arc<App<S>>>,
    Query(query): Query<Export>,
) -> Response {
    match serve(&app, &query.name).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn serve<S: Store + Clone>(app: &App<S>, name: &str) -> Result<Response, ApiError> {
    if !name.starts_with("nanocl.local/") {
        return Err(ApiError::bad_request(format!(
            "only images nanocl built (nanocl.local/…) are exported, not {name:?}"
        )));
    }
    let docker = Engine::connect_to(app.docker.as_deref())
        .await
        .map_err(|e| ApiError::unavailable(format!("Docker is not reachable: {e}")))?;
    let instance = crate::controllers::instance_id(&app.store).await?;
    let ours = docker
        .list_images(&[format!("{BUILT_LABEL}={instance}")])
        .await
        .map_err(|e| ApiError::unavailable(format!("listing the built images failed: {e}")))?;
    if !ours.iter().any(|i| i.tags.iter().any(|t| t == name)) {
        return Err(ApiError::not_found(format!(
            "image {name:?} was not built here (this nanocld's Docker has no such image of this store)"
        )));
    }
    let body = docker
        .export_image(name)
        .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(body),
    )
        .into_response())
}
