//! Gateway addresses: a host (an IP address or a DNS name, checked once, when the
//! address is made) and a port from 1 to 65535.
//!
//! What reaches meshNetworks and helm's values is one of these, never a string: a
//! Service's status, a Node or a user can only give an address that is a host and a
//! port and nothing else (no second helm value after a comma, no URL, no path).

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::error::{Error, Result};

/// The TLS port of Istio's east-west gateway chart (`tls`, 15443): the port a
/// [`AddressOverride`] gets when nothing else says which.
pub const DEFAULT_GATEWAY_PORT: u16 = 15443;

/// Where an east-west gateway is reached: a host and a port.
///
/// ```
/// use mesh_core::GatewayAddress;
/// let gw: GatewayAddress = "gw.example.com:15443".parse()?;
/// assert_eq!((gw.host(), gw.port()), ("gw.example.com", 15443));
/// assert_eq!("[::1]:8443".parse::<GatewayAddress>()?.to_string(), "[::1]:8443");
/// assert!("1.2.3.4,x=y:15443".parse::<GatewayAddress>().is_err());
/// # Ok::<(), mesh_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GatewayAddress {
    host: String,
    port: u16,
}

impl GatewayAddress {
    /// The address of `host` (an IP address or a DNS name) at `port` (1 to 65535).
    pub fn new(host: &str, port: u16) -> Result<GatewayAddress> {
        check_host(host).map_err(|reason| invalid(host, reason))?;
        if port == 0 {
            return Err(invalid(
                host,
                "has port 0, not a number from 1 to 65535".into(),
            ));
        }
        Ok(GatewayAddress {
            host: host.to_owned(),
            port,
        })
    }

    /// The host: an IP address (without brackets) or a DNS name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is a loopback IP address (no other cluster reaches it).
    pub fn is_loopback(&self) -> bool {
        self.host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    }
}

impl FromStr for GatewayAddress {
    type Err = Error;

    /// `HOST:PORT` (an IPv6 address in brackets: `[::1]:15443`).
    fn from_str(text: &str) -> Result<GatewayAddress> {
        let given: AddressOverride = text.parse()?;
        match given.port {
            Some(port) => Ok(GatewayAddress {
                host: given.host,
                port,
            }),
            None => Err(invalid(text, "has no port".into())),
        }
    }
}

impl fmt::Display for GatewayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_host(f, &self.host)?;
        write!(f, ":{}", self.port)
    }
}

/// Serialized as `[host, port]`, as the summaries have always shown it.
impl Serialize for GatewayAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.host, self.port).serialize(serializer)
    }
}

/// A gateway address as a user gives one: a host, with or without a port. Without one,
/// the port is the gateway Service's TLS port once join has found it
/// ([`AddressOverride::with_default_port`]).
///
/// ```
/// use mesh_core::AddressOverride;
/// let given: AddressOverride = "gw.example.com".parse()?;
/// assert_eq!(given.port(), None);
/// assert_eq!(given.with_default_port(15443).to_string(), "gw.example.com:15443");
/// let err = "gw.example.com:0".parse::<AddressOverride>().unwrap_err();
/// assert!(err.to_string().contains("has port \"0\""));
/// # Ok::<(), mesh_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressOverride {
    host: String,
    port: Option<u16>,
}

impl AddressOverride {
    /// The host: an IP address (without brackets) or a DNS name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, when one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The address, with `port` when none was given.
    pub fn with_default_port(&self, port: u16) -> GatewayAddress {
        GatewayAddress {
            host: self.host.clone(),
            port: self.port.unwrap_or(port),
        }
    }
}

impl From<GatewayAddress> for AddressOverride {
    fn from(address: GatewayAddress) -> AddressOverride {
        AddressOverride {
            host: address.host,
            port: Some(address.port),
        }
    }
}

impl FromStr for AddressOverride {
    type Err = Error;

    /// `HOST` or `HOST:PORT` (an IPv6 address in brackets when a port follows).
    fn from_str(text: &str) -> Result<AddressOverride> {
        parse(text).map_err(|reason| invalid(text, reason))
    }
}

impl fmt::Display for AddressOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_host(f, &self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

fn write_host(f: &mut fmt::Formatter<'_>, host: &str) -> fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]")
    } else {
        f.write_str(host)
    }
}

fn invalid(text: &str, reason: String) -> Error {
    Error::InvalidAddress {
        address: text.to_owned(),
        reason,
    }
}

/// Parses `HOST` or `HOST:PORT`; the error says why `text` is not one.
fn parse(text: &str) -> std::result::Result<AddressOverride, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("has a '[' without its ']'")?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("has {after:?} after its ']'")),
        }
    } else {
        match text.rsplit_once(':') {
            // One colon: HOST:PORT; more: a bare IPv6 address.
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            _ => (text, None),
        }
    };
    check_host(host)?;
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err(format!("has port {port:?}, not a number from 1 to 65535")),
        },
    };
    Ok(AddressOverride {
        host: host.to_owned(),
        port,
    })
}

/// Why `host` is neither an IP address nor a DNS host name, if it is not one.
fn check_host(host: &str) -> std::result::Result<(), String> {
    if host.is_empty() {
        return Err("has no host".into());
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.len() <= 253 && host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "has host {host:?}, which is neither an IP address nor a DNS name"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> std::result::Result<(String, u16), String> {
        text.parse::<AddressOverride>()
            .map(|a| a.with_default_port(DEFAULT_GATEWAY_PORT))
            .map(|a| (a.host().to_owned(), a.port()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn gateway_addresses_parse_with_and_without_port() {
        assert_eq!(parsed("1.2.3.4"), Ok(("1.2.3.4".into(), 15443)));
        assert_eq!(
            parsed("gw.example.com:443"),
            Ok(("gw.example.com".into(), 443))
        );
        assert_eq!(parsed("[::1]:8443"), Ok(("::1".into(), 8443)));
        assert_eq!(parsed("::1"), Ok(("::1".into(), 15443)));
        assert!(parsed("1.2.3.4:http").is_err());
        assert!(parsed("").is_err());
    }

    #[test]
    fn gateway_addresses_are_a_host_and_a_port_and_nothing_else() {
        // What would reach helm as a second value, or a URL, or a path.
        for bad in [
            "1.2.3.4,x=y",
            "1.2.3.4:15443,x=y",
            "gw.example.com/x",
            "https://gw.example.com",
            "gw example.com",
            "-gw.example.com",
            "[::1",
            "[::1]x",
            ":443",
        ] {
            assert!(parsed(bad).is_err(), "{bad:?} was accepted");
        }
        for bad_port in ["1.2.3.4:0", "1.2.3.4:65536", "[::1]:-1"] {
            let e = parsed(bad_port).unwrap_err();
            assert!(e.contains("1 to 65535"), "{bad_port:?}: {e}");
        }
        assert_eq!(
            parsed("GW-1.example.com:65535"),
            Ok(("GW-1.example.com".into(), 65535))
        );
    }

    #[test]
    fn addresses_print_as_they_parse_and_need_a_port() {
        for text in ["1.2.3.4:15443", "gw.example.com:443", "[::1]:8443"] {
            assert_eq!(text.parse::<GatewayAddress>().unwrap().to_string(), text);
        }
        let e = "1.2.3.4".parse::<GatewayAddress>().unwrap_err();
        assert!(matches!(e, Error::InvalidAddress { .. }), "{e:?}");
        assert_eq!(e.to_string(), "gateway address \"1.2.3.4\" has no port");
        assert!(GatewayAddress::new("a b", 1).is_err());
        assert!(GatewayAddress::new("gw", 0).is_err());
        assert!(GatewayAddress::new("127.0.0.1", 1).unwrap().is_loopback());
        assert_eq!(
            serde_json::to_value(GatewayAddress::new("gw", 1).unwrap()).unwrap(),
            serde_json::json!(["gw", 1])
        );
    }
}
