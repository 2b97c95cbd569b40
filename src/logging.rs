//! Process-wide logging with `tracing`: human or JSON lines on stderr, filtered by the config's
//! level (or `BERTH_LOG` when set, for debugging).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber, exporting traces to `otlp_endpoint` when it is set (then it
/// must run inside a tokio runtime) and returning the trace provider to flush at exit. Call
/// once, before anything logs.
pub fn init(
    config: &LogConfig,
    otlp_endpoint: &str,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("BERTH_LOG")
        .ok()
        .and_then(|f| f.parse::<EnvFilter>().ok())
        .unwrap_or_else(|| {
            config
                .level
                .parse()
                .expect("log.level is validated when the config loads")
        });
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt = match config.format {
        LogFormat::Human => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let (otel, provider) = if otlp_endpoint.is_empty() {
        (None, None)
    } else {
        let pipeline = crate::telemetry::otel::pipeline(otlp_endpoint)?;
        (Some(pipeline.layer), Some(pipeline.provider))
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(fmt)
        .init();
    Ok(provider)
}
