//! Why an activity refused a request; each variant is one contract error code.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivityError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    SoldOut(String),
    #[error("you already bought the most this activity allows per person")]
    LimitReached,
    #[error("{0}")]
    NotOpen(String),
    #[error("the waiting room is full")]
    QueueFull,
    #[error("the purchase token has expired")]
    TokenExpired,
    #[error("{0}")]
    TokenInvalid(String),
    #[error("{0}")]
    Conflict(String),
}
