//! The rill broker node. Built in the broker issue.
