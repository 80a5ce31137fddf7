//! What the create and its recovery share: the steps a create records and undoes.

use crate::names::{NetworkName, UserId, VolumeName};

/// The operation step noting that a create made the user's network.
pub(crate) const STEP_NETWORK_CREATED: &str = "network_created";

/// The operation step noting that a create made the data volume.
pub(crate) const STEP_VOLUME_CREATED: &str = "volume_created";

/// Something a create did that undo must reverse.
pub(crate) enum Undo {
    Container(String),
    Volume(VolumeName),
    Network(NetworkName, UserId),
}
