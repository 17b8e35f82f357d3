//! [`Status`]: how a call fails, the same on every mechanism.

use std::fmt;

/// A gRPC status code. Outlet uses the gRPC codes on every mechanism, so a
/// caller can match on `DeadlineExceeded` whether the plugin ran in a
/// sandbox, a child process or the host itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Not an error.
    Ok = 0,
    /// The caller cancelled the call.
    Cancelled = 1,
    /// An error with no better code.
    Unknown = 2,
    /// The request was malformed.
    InvalidArgument = 3,
    /// The call ran past its time limit.
    DeadlineExceeded = 4,
    /// Something the request named does not exist.
    NotFound = 5,
    /// Something the request would create already exists.
    AlreadyExists = 6,
    /// The caller may not do this.
    PermissionDenied = 7,
    /// A limit was hit: memory, message size, rate.
    ResourceExhausted = 8,
    /// The system is not in a state that allows the call.
    FailedPrecondition = 9,
    /// The call was aborted, typically by a conflict.
    Aborted = 10,
    /// A value was outside its valid range.
    OutOfRange = 11,
    /// The plugin does not implement the method.
    Unimplemented = 12,
    /// The plugin or the host broke an invariant.
    Internal = 13,
    /// The plugin cannot be reached: it is gone, stopped or restarting.
    Unavailable = 14,
    /// Data was lost or corrupted.
    DataLoss = 15,
    /// The caller is not authenticated.
    Unauthenticated = 16,
}

impl Code {
    /// The code for a numeric value; unknown numbers become [`Code::Unknown`].
    pub fn from_i32(value: i32) -> Code {
        match value {
            0 => Code::Ok,
            1 => Code::Cancelled,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// The numeric value, as gRPC puts it on the wire.
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A failed call: a [`Code`] and a message for people.
///
/// Boxed, so a `Result<T, Status>` costs one pointer beside `T`.
#[derive(Clone, PartialEq, Eq)]
pub struct Status(Box<Inner>);

#[derive(Clone, PartialEq, Eq)]
struct Inner {
    code: Code,
    message: String,
}

macro_rules! constructors {
    ($($name:ident => $code:ident),* $(,)?) => {
        $(
            #[doc = concat!("A status with [`Code::", stringify!($code), "`].")]
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with any code.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status(Box::new(Inner {
            code,
            message: message.into(),
        }))
    }

    constructors! {
        cancelled => Cancelled,
        unknown => Unknown,
        invalid_argument => InvalidArgument,
        deadline_exceeded => DeadlineExceeded,
        not_found => NotFound,
        permission_denied => PermissionDenied,
        resource_exhausted => ResourceExhausted,
        failed_precondition => FailedPrecondition,
        unimplemented => Unimplemented,
        internal => Internal,
        unavailable => Unavailable,
        data_loss => DataLoss,
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The same status with `context: ` put before its message.
    pub fn context(mut self, context: impl fmt::Display) -> Status {
        self.0.message = format!("{context}: {}", self.0.message);
        self
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Status")
            .field("code", &self.0.code)
            .field("message", &self.0.message)
            .finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.message)
    }
}

impl std::error::Error for Status {}

impl From<crate::core::Status> for Status {
    fn from(wire: crate::core::Status) -> Status {
        Status::new(Code::from_i32(wire.code), wire.message)
    }
}

impl From<&Status> for crate::core::Status {
    fn from(status: &Status) -> crate::core::Status {
        crate::core::Status {
            code: status.code().as_i32(),
            message: status.message().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_numbers() {
        for n in 0..=16 {
            assert_eq!(Code::from_i32(n).as_i32(), n);
        }
        assert_eq!(Code::from_i32(99), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
    }

    #[test]
    fn display_names_code_and_message() {
        let status = Status::deadline_exceeded("took 2s").context("plugin `greeter`");
        assert_eq!(
            status.to_string(),
            "DeadlineExceeded: plugin `greeter`: took 2s"
        );
        let wire = crate::core::Status::from(&status);
        assert_eq!(Status::from(wire), status);
    }

    #[test]
    fn status_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Status>(), std::mem::size_of::<usize>());
    }
}
