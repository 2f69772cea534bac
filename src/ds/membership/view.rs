//! The replicated state of the contact node and its backups: one committed [`View`] per
//! epoch.

use std::fmt;

/// A node's configured, unique identifier (`NodeId` in mip6d.conf); also the sender id
/// of its authenticated frames.
pub type NodeId = u32;

/// At most this many backups (the seed: "typically less than 5"); bounds decoding.
pub const MAX_MEMBERS: usize = 32;

/// One backup (the contact included) in a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub node: NodeId,
    /// The seed's "unique identifier", handed out by the contact from a counter at join:
    /// it orders the backups, so a node that rejoins goes to the end of the line and a
    /// flapping node never grabs the contact role back.
    pub rank: u32,
}

/// The contact node and its backups as committed in one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The ballot this view was chosen at. Strictly increasing along the chain of
    /// committed views, and never reused: `(round << 32) | proposer's node id`.
    pub epoch: u64,
    /// Ordered by rank; the first is the contact node.
    pub members: Vec<Member>,
    /// The rank the next joiner gets.
    pub next_rank: u32,
    /// The sequence number the contact of this view registers the DSA with at the home
    /// agent. It grows whenever the contact changes, so a new contact's Binding Update is
    /// always newer than anything a deposed one sent (RFC 6275 §9.5.1).
    pub dsa_seq: u16,
}

impl View {
    /// The view every configured backup starts from (epoch 0): `backups` in the order
    /// given, the first being the initial contact.
    pub fn genesis(backups: &[NodeId]) -> View {
        let mut members: Vec<Member> = Vec::new();
        for &node in backups {
            if !members.iter().any(|m| m.node == node) && members.len() < MAX_MEMBERS {
                let rank = members.len() as u32;
                members.push(Member { node, rank });
            }
        }
        View {
            epoch: 0,
            next_rank: members.len() as u32,
            members,
            dsa_seq: 0,
        }
    }

    pub fn contact(&self) -> Option<NodeId> {
        self.members.first().map(|m| m.node)
    }

    pub fn contains(&self, node: NodeId) -> bool {
        self.members.iter().any(|m| m.node == node)
    }

    /// How many members make a majority of this view: a commit that follows this view
    /// needs this many of its members, so two partition sides can never both commit.
    pub fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// The member before `node` in rank order, wrapping around (so the contact watches
    /// the last backup and every backup has someone watching it).
    pub fn predecessor(&self, node: NodeId) -> Option<NodeId> {
        let i = self.members.iter().position(|m| m.node == node)?;
        if self.members.len() < 2 {
            return None;
        }
        let j = (i + self.members.len() - 1) % self.members.len();
        Some(self.members[j].node)
    }

    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().map(|m| m.node)
    }
}

/// Epochs print as `round.node`, which is how they are built.
pub struct EpochDisplay(pub u64);

impl fmt::Display for EpochDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 >> 32, self.0 as u32)
    }
}

/// RFC 1982 serial number order on 16 bits, as the home agent compares BU sequences.
pub fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_orders_as_given_and_drops_duplicates() {
        let v = View::genesis(&[5, 2, 5, 9]);
        assert_eq!(v.nodes().collect::<Vec<_>>(), vec![5, 2, 9]);
        assert_eq!(v.contact(), Some(5));
        assert_eq!(v.next_rank, 3);
        assert_eq!(v.majority(), 2);
    }

    #[test]
    fn predecessor_wraps_around() {
        let v = View::genesis(&[1, 2, 3]);
        assert_eq!(v.predecessor(2), Some(1));
        assert_eq!(v.predecessor(1), Some(3));
        assert_eq!(View::genesis(&[1]).predecessor(1), None);
        assert_eq!(v.predecessor(7), None);
    }

    #[test]
    fn serial_order() {
        assert!(seq_newer(1, 0));
        assert!(seq_newer(0, 0xffff));
        assert!(!seq_newer(0, 1));
        assert!(!seq_newer(3, 3));
    }
}
