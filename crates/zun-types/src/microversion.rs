//! `OpenStack-API-Version: container X.Y` negotiation (reference §1.2).

use std::fmt;

use crate::error::ApiError;

pub const HEADER: &str = "OpenStack-API-Version";
pub const MIN_HEADER: &str = "OpenStack-API-Minimum-Version";
pub const MAX_HEADER: &str = "OpenStack-API-Maximum-Version";
pub const SERVICE_TYPE: &str = "container";

/// A microversion `1.minor`. Ordered, so gates read `v >= Version::new(1, 20)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
}

impl Version {
    pub const MIN: Version = Version { major: 1, minor: 1 };
    pub const MAX: Version = Version {
        major: 1,
        minor: 40,
    };

    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }

    /// The effective version for a request's header value; `None` means the
    /// header was absent, which upstream treats as the minimum.
    pub fn negotiate(header: Option<&str>) -> Result<Version, ApiError> {
        let Some(raw) = header else {
            return Ok(Self::MIN);
        };
        let tokens: Vec<&str> = raw.split_whitespace().collect();
        if tokens.len() != 2 || tokens[0] != SERVICE_TYPE {
            return Err(ApiError::not_acceptable(
                "Invalid service type for OpenStack-API-Version header".into(),
            ));
        }
        if tokens[1].eq_ignore_ascii_case("latest") {
            return Ok(Self::MAX);
        }
        let version = Self::parse(tokens[1]).ok_or_else(|| {
            ApiError::not_acceptable("Invalid value for OpenStack-API-Version header".into())
        })?;
        let range = format!(
            "The supported version range is: [{SERVICE_TYPE} {}, {SERVICE_TYPE} {}].",
            Self::MIN,
            Self::MAX
        );
        if version.major != Self::MAX.major {
            return Err(ApiError::not_acceptable(format!(
                "Mutually exclusive versions requested. Version {version} requested but not supported by this service. {range}"
            )));
        }
        if version < Self::MIN || version > Self::MAX {
            return Err(ApiError::not_acceptable(format!(
                "Version {version} was requested but the minor version is not supported by this service. {range}"
            )));
        }
        Ok(version)
    }

    fn parse(text: &str) -> Option<Version> {
        let (major, minor) = text.split_once('.')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(major) || !all_digits(minor) {
            return None;
        }
        Some(Version::new(major.parse().ok()?, minor.parse().ok()?))
    }

    /// 406 for a route that exists but not at this version.
    pub fn unsupported_route(self) -> ApiError {
        ApiError::not_acceptable(format!(
            "Version {self} was requested but the requested API is not supported for this version."
        ))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_header_is_minimum() {
        assert_eq!(Version::negotiate(None).ok(), Some(Version::MIN));
    }

    #[test]
    fn latest_is_maximum_case_insensitive() {
        assert_eq!(
            Version::negotiate(Some("container LATEST")).ok(),
            Some(Version::MAX)
        );
    }

    #[test]
    fn every_supported_version_parses() {
        for minor in 1..=40 {
            let v = Version::negotiate(Some(&format!("container 1.{minor}"))).ok();
            assert_eq!(v, Some(Version::new(1, minor)));
        }
    }

    #[test]
    fn out_of_range_and_malformed_are_406() {
        for bad in [
            "container 1.41",
            "container 1.0",
            "container 2.1",
            "compute 1.2",
            "container",
            "container 1.x",
            "container 1.2 extra",
            "container -1.2",
        ] {
            let err = Version::negotiate(Some(bad)).expect_err(bad);
            assert_eq!(err.status, 406, "{bad}");
        }
    }

    #[test]
    fn malformed_headers_name_the_service_type_as_upstream() {
        for bad in ["garbage", "container 1.40 extra", "compute 1.2"] {
            let err = Version::negotiate(Some(bad)).expect_err(bad);
            assert_eq!(
                err.detail,
                "Invalid service type for OpenStack-API-Version header"
            );
        }
        let err = Version::negotiate(Some("container 1.x")).expect_err("bad number");
        assert_eq!(err.detail, "Invalid value for OpenStack-API-Version header");
    }

    #[test]
    fn minor_out_of_range_message_names_range() {
        let err = Version::negotiate(Some("container 1.99")).expect_err("out of range");
        assert_eq!(
            err.detail,
            "Version 1.99 was requested but the minor version is not supported by this service. The supported version range is: [container 1.1, container 1.40]."
        );
    }
}
