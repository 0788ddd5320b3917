//! The rill client library. Built in the client issue.
