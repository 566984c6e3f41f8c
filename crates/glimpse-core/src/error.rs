//! One error type for the whole server, carrying the google.rpc canonical code it maps to.
//!
//! The router maps it once to `{"error":{"code","message","status"}}`; everything below only has to pick the
//! variant that says what went wrong.

use crate::media::MediaError;

/// The google.rpc canonical codes Glimpse emits (the router maps them to HTTP statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    ResourceExhausted,
    Cancelled,
    Internal,
    Unimplemented,
    Unavailable,
    DeadlineExceeded,
}

impl Code {
    /// The google.rpc code number (`3` for INVALID_ARGUMENT), the `code` of a `google.rpc.Status` embedded in a
    /// resource (a batch request's error, a FAILED file).
    pub fn number(self) -> u16 {
        match self {
            Code::Cancelled => 1,
            Code::InvalidArgument => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::AlreadyExists => 6,
            Code::PermissionDenied => 7,
            Code::ResourceExhausted => 8,
            Code::FailedPrecondition => 9,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::Unauthenticated => 16,
        }
    }

    /// The google.rpc name (`INVALID_ARGUMENT`), the `status` of Google's error envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Cancelled => "CANCELLED",
            Code::Internal => "INTERNAL",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Unavailable => "UNAVAILABLE",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GlimpseError {
    /// The request is malformed or asks for something this server cannot do.
    #[error("{0}")]
    InvalidArgument(String),
    /// An image that cannot be used (bad type, corrupt bytes, too large).
    #[error(transparent)]
    Media(#[from] MediaError),
    /// Decoded inline data larger than the configured cap (checked before any decoding).
    #[error("Request payload size exceeds the limit: {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    /// The prompt does not fit the model's context window.
    #[error("The input token count ({count}) exceeds the maximum number of tokens allowed ({limit}).")]
    PromptTooLong { count: u32, limit: u32 },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// The request ran past the server's time limit for one request (504).
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Too much work is admitted already: retry shortly (429 with `Retry-After`).
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Unimplemented(String),
    /// The engine failed while working on a valid request.
    #[error("{0}")]
    Engine(String),
    /// The metadata database or blob store failed.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The request body ended before its end: the client stopped sending (`--read-timeout`) or went
    /// away. An upload's session survives it, to be resumed from its last acknowledged offset.
    #[error("{0}")]
    BodyInterrupted(String),
}

impl GlimpseError {
    pub fn code(&self) -> Code {
        match self {
            GlimpseError::InvalidArgument(_)
            | GlimpseError::Media(_)
            | GlimpseError::PayloadTooLarge { .. }
            | GlimpseError::PromptTooLong { .. } => Code::InvalidArgument,
            GlimpseError::FailedPrecondition(_) => Code::FailedPrecondition,
            GlimpseError::PermissionDenied(_) => Code::PermissionDenied,
            GlimpseError::NotFound(_) => Code::NotFound,
            GlimpseError::AlreadyExists(_) => Code::AlreadyExists,
            GlimpseError::ResourceExhausted(_) | GlimpseError::Overloaded(_) => Code::ResourceExhausted,
            GlimpseError::Unavailable(_) => Code::Unavailable,
            GlimpseError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            GlimpseError::Unimplemented(_) => Code::Unimplemented,
            GlimpseError::Engine(_) | GlimpseError::Storage(_) => Code::Internal,
            GlimpseError::BodyInterrupted(_) => Code::Cancelled,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        GlimpseError::InvalidArgument(message.into())
    }
}

pub type Result<T, E = GlimpseError> = std::result::Result<T, E>;
