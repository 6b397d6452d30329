//! The holder's query engine: from its configured name to a running backend.
//!
//! Polars is always built in. The DataFusion engines (in process, or a Ballista cluster) come
//! from the `oar-datafusion` crate when the host is built with the `datafusion` cargo feature;
//! without it, naming them is a configuration error that says how to build it.

use crate::query::{QueryBackend, QueryEngine};
use std::sync::Arc;

/// The backend that runs `engine`, or what is wrong with the choice.
pub fn backend(engine: &QueryEngine) -> Result<Arc<dyn QueryBackend>, String> {
    if let Some(polars) = engine.polars_backend() {
        return Ok(polars);
    }
    datafusion_backend(engine)
}

#[cfg(feature = "datafusion")]
fn datafusion_backend(engine: &QueryEngine) -> Result<Arc<dyn QueryBackend>, String> {
    use oar_datafusion::DataFusionBackend;
    let backend = match engine {
        QueryEngine::Ballista { scheduler } => DataFusionBackend::ballista(scheduler),
        _ => DataFusionBackend::in_process(),
    };
    backend
        .map(|b| Arc::new(b) as Arc<dyn QueryBackend>)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "datafusion"))]
fn datafusion_backend(engine: &QueryEngine) -> Result<Arc<dyn QueryBackend>, String> {
    Err(format!(
        "query engine '{}' needs an oar built with DataFusion: cargo build --release -p oar-host --features datafusion",
        engine.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polars_is_built_in_and_datafusion_follows_the_build() {
        assert_eq!(
            backend(&QueryEngine::PolarsStreaming).unwrap().name(),
            "polars-streaming"
        );
        let df = backend(&QueryEngine::DataFusion);
        let cluster = backend(&QueryEngine::Ballista {
            scheduler: "df://127.0.0.1:50050".into(),
        });
        if cfg!(feature = "datafusion") {
            assert_eq!(df.unwrap().name(), "datafusion");
            assert_eq!(cluster.unwrap().name(), "ballista");
            let bad = backend(&QueryEngine::Ballista {
                scheduler: "df://nowhere".into(),
            });
            assert!(bad.err().unwrap().contains("df://host:port"));
        } else {
            assert!(df.err().unwrap().contains("--features datafusion"));
            assert!(cluster.err().unwrap().contains("--features datafusion"));
        }
    }
}
