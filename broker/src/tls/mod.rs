//! TLS on the node's listener (docs/security.md): the server configuration built from the PEM files of a
//! [`TlsConfig`], the acceptor that swaps it when those files change, and the stream a TLS connection is served
//! over.
//!
//! Why the node owns the handshake rather than tonic: one port serves gRPC and Kafka, the certificate must
//! reload without a restart, and a silent peer must not hold a connection slot past a deadline. tonic's own TLS
//! does none of the three. After the handshake, ALPN tells the protocols apart: gRPC over TLS always offers
//! `h2` (the gRPC spec requires it), Kafka clients offer nothing.
//!
//! A node of a cluster dials its peers (`peer.rs`) over TLS when its own listener uses TLS, presenting its own
//! certificate: the nodes of a cluster all use TLS, or none does.
//!
//! Invariant: a configuration that fails to load never replaces the one in use; the node starts only with one
//! that loaded.

mod acceptor;
mod load;
mod peer;
mod stream;

pub use acceptor::{watch_files, TlsAcceptorHandle};
pub use load::{TlsError, TlsListener, ALPN_H2};
pub use peer::{channel_to, PeerChannel};
pub use stream::{ConnectionInfo, PeerCertificates, ServedStream};
