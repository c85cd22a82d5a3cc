//! The one public error type. Its kind tells the caller what to do; the message names the detail
//! (state, file, key group).

use std::fmt;

/// What went wrong, as far as the caller's reaction is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The call itself is wrong (bad parameter, no current key, value over a limit): fix the call.
    InvalidArgument,
    /// A state registration or restore does not fit what exists (other kind, other codec, other
    /// max parallelism): fix the job's configuration.
    IncompatibleState,
    /// Stored bytes are not what they must be: restore from another checkpoint.
    Corruption,
    /// The operating system or the storage engine failed: retry or free resources.
    Io,
    /// The backend was closed; no further calls are accepted.
    Closed,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::IncompatibleState => "incompatible state",
            ErrorKind::Corruption => "corruption",
            ErrorKind::Io => "I/O error",
            ErrorKind::Closed => "closed",
        })
    }
}

/// keyedstate's error: a kind plus a message with the detail.
/// Boxed, so that a `Result` of a small value is returned in registers: every state access
/// returns one, and errors are the rare path.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind, self.0.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The source of the `Io` error of a snapshot that declined its checkpoint: it could not take a
/// consistent one this time, and the backend's next snapshot takes another way. Nothing is
/// lost; a job may go on, as Flink tolerates a declined checkpoint ([`Error::is_declined`]).
/// Neither backend of this workspace declines since 2026-12-07 (the RocksDB one did until its
/// checkpoints copied the write-ahead log: docs/config.md, "Checkpoint pause").
#[derive(Debug)]
pub struct CheckpointDeclined;

impl fmt::Display for CheckpointDeclined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the checkpoint was declined; the next one is taken another way")
    }
}

impl std::error::Error for CheckpointDeclined {}

/// keyedstate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    #[cold]
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            source: None,
        }))
    }

    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }))
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn incompatible_state(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::IncompatibleState, message)
    }

    pub fn corruption(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corruption, message)
    }

    pub fn closed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Closed, message)
    }

    /// An I/O error; the message ends with the operating system's reason, so that one line
    /// says what failed and why.
    pub fn io(message: impl Into<String>, source: std::io::Error) -> Self {
        let message = format!("{}: {source}", message.into());
        Self::with_source(ErrorKind::Io, message, source)
    }

    /// A declined checkpoint (an `Io` error whose source is [`CheckpointDeclined`]).
    pub fn declined(message: impl Into<String>) -> Self {
        Self::with_source(ErrorKind::Io, message, CheckpointDeclined)
    }

    /// Whether this is a declined checkpoint, with or without context added.
    pub fn is_declined(&self) -> bool {
        self.0
            .source
            .as_ref()
            .is_some_and(|s| s.downcast_ref::<CheckpointDeclined>().is_some())
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Prefixes the message with where the error happened, keeping kind and source.
    #[cold]
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.0.message = format!("{context}: {}", self.0.message);
        self
    }
}
