//! Producer-id blocks reserved through the controller, so that no two nodes of a cluster ever issue the same
//! producer id, whichever of them started a producer and whatever disk was lost since (Kafka's KIP-730).
//!
//! A node-local counter would not do: a node whose data dir is replaced would hand out ids it issued before, and
//! a partition that still remembers the old producer would take the new one's first batches for duplicates of
//! the old one's and drop them.

use std::ops::Range;
use std::sync::Arc;

use tokio::runtime::Handle;

use super::metadata::Command;
use super::Controller;
use crate::error::{BrokerError, Result};
use crate::producer_ids::ProducerIdBlocks;

pub struct ControllerProducerIdBlocks {
    controller: Arc<Controller>,
    runtime: Handle,
}

impl ControllerProducerIdBlocks {
    /// `runtime` runs the proposal; [`ProducerIdBlocks::reserve`] is called from a blocking thread of it.
    pub fn new(controller: Arc<Controller>, runtime: Handle) -> ControllerProducerIdBlocks {
        ControllerProducerIdBlocks { controller, runtime }
    }
}

impl ProducerIdBlocks for ControllerProducerIdBlocks {
    fn reserve(&self, count: i64) -> Result<Range<i64>> {
        let outcome = self.runtime.block_on(self.controller.propose(Command::ReserveProducerIds { count }))?;
        let (start, end) = outcome.producer_ids.ok_or_else(|| {
            BrokerError::Internal("the controller answered a producer-id reservation without a block".into())
        })?;
        tracing::debug!(start, end, "reserved a block of producer ids through the controller");
        Ok(start..end)
    }
}
