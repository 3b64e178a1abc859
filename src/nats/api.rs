//! Raw JetStream API calls. async-nats hides the server's error description and
//! drops the mirror's `error` from stream info; both are needed for messages
//! that tell the user what to change, so responses are decoded here.

use async_nats::jetstream::Context;
use async_nats::jetstream::context::RequestErrorKind;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Server error codes this module acts on (nats-server `errors.json`).
pub mod code {
    pub const STREAM_NOT_FOUND: u64 = 10059;
    pub const STREAM_NAME_EXISTS: u64 = 10058;
    pub const STREAM_SUBJECT_OVERLAP: u64 = 10065;
    pub const STREAM_INVALID_CONFIG: u64 = 10052;
    pub const STREAM_MIRROR_NOT_UPDATABLE: u64 = 10055;
    pub const STREAM_REPLICAS_NOT_SUPPORTED: u64 = 10074;
    pub const CLUSTER_NO_PEERS: u64 = 10005;
}

/// An error answer from the JetStream API.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub err_code: u64,
    #[serde(default)]
    pub description: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (status {}, error code {})",
            self.description, self.code, self.err_code
        )
    }
}

/// Why no answer came back at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoAnswer {
    /// Nobody subscribes to the API subject: JetStream is off, the domain or
    /// prefix is wrong, or the link that would carry the request is down.
    NoResponders,
    TimedOut,
    Other(String),
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::NoResponders => f.write_str("no responders"),
            NoAnswer::TimedOut => f.write_str("timed out"),
            NoAnswer::Other(e) => f.write_str(e),
        }
    }
}

pub enum Answer<T> {
    Ok(T),
    Err(ApiError),
}

/// Sends `subject` (relative to the context's API prefix) and decodes the answer.
pub async fn call<T: DeserializeOwned>(
    js: &Context,
    subject: String,
    payload: &impl serde::Serialize,
) -> Result<Answer<T>, NoAnswer> {
    let raw: Value = js
        .request(subject, payload)
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => NoAnswer::NoResponders,
            RequestErrorKind::TimedOut => NoAnswer::TimedOut,
            _ => NoAnswer::Other(e.to_string()),
        })?;
    if let Some(error) = raw.get("error") {
        let error: ApiError = serde_json::from_value(error.clone())
            .map_err(|e| NoAnswer::Other(format!("undecodable JetStream error {error}: {e}")))?;
        return Ok(Answer::Err(error));
    }
    serde_json::from_value(raw)
        .map(Answer::Ok)
        .map_err(|e| NoAnswer::Other(format!("undecodable JetStream answer: {e}")))
}

/// Stream info as the server sends it: the typed part async-nats knows, plus
/// the raw document for the fields it drops.
pub struct StreamInfo {
    pub info: async_nats::jetstream::stream::Info,
    pub raw: Value,
}

impl StreamInfo {
    /// The error the mirror's sourcing reports, if any.
    pub fn mirror_error(&self) -> Option<ApiError> {
        let e = self.raw.get("mirror")?.get("error")?;
        serde_json::from_value(e.clone()).ok()
    }
}

/// `Ok(None)` when the stream does not exist.
pub async fn stream_info(
    js: &Context,
    stream: &str,
) -> Result<Result<Option<StreamInfo>, ApiError>, NoAnswer> {
    match call::<Value>(js, format!("STREAM.INFO.{stream}"), &()).await? {
        Answer::Ok(raw) => {
            let info = serde_json::from_value(raw.clone()).map_err(|e| {
                NoAnswer::Other(format!("undecodable stream info for {stream}: {e}"))
            })?;
            Ok(Ok(Some(StreamInfo { info, raw })))
        }
        Answer::Err(e) if e.err_code == code::STREAM_NOT_FOUND => Ok(Ok(None)),
        Answer::Err(e) => Ok(Err(e)),
    }
}
