//! Elements of nftables sets added and deleted over nf_tables netlink, one batch each,
//! instead of a fork and exec of `nft` (milliseconds) per change:
//!
//! ```text
//! batch begin   type NFNL_MSG_BATCH_BEGIN (16), nfgenmsg { AF_UNSPEC, 0, be16 NFNL_SUBSYS_NFTABLES }
//! element       type NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM (12) / DELSETELEM (14)
//!               nfgenmsg { family, 0, 0 }
//!               NFTA_SET_ELEM_LIST_TABLE "table\0", NFTA_SET_ELEM_LIST_SET "set\0",
//!               NFTA_SET_ELEM_LIST_ELEMENTS { NFTA_LIST_ELEM { NFTA_SET_ELEM_KEY {
//!                 NFTA_DATA_VALUE: the key, each field of a concatenation padded to 32 bits }}}
//! batch end     type NFNL_MSG_BATCH_END (17)
//! ```
//!
//! The tables and sets themselves are created with the `nft` command, once.

use std::io;

use netlink_sys::protocols::NETLINK_NETFILTER;

use super::netlink::{MsgBuilder, Requester, NLM_F_ACK, NLM_F_CREATE};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;

/// `NFPROTO_INET`: a table of family `inet`.
pub const NFPROTO_INET: u8 = 1;
/// `NFPROTO_IPV6`: a table of family `ip6`.
pub const NFPROTO_IPV6: u8 = 10;

/// One batch adding (`add`) or deleting the element `key` of set `set` in table
/// `family table`; the element message, numbered `seq`, asks for an acknowledgement (the
/// batch's begin and end take `seq - 1` and `seq + 1`).
pub fn element_batch(
    seq: u32,
    add: bool,
    family: u8,
    table: &str,
    set: &str,
    key: &[u8],
) -> io::Result<Vec<u8>> {
    let subsys = NFNL_SUBSYS_NFTABLES.to_be_bytes();
    let batch_gen = [libc::AF_UNSPEC as u8, 0, subsys[0], subsys[1]];
    let (op, flags) = if add {
        (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_ACK)
    } else {
        (NFT_MSG_DELSETELEM, NLM_F_ACK)
    };
    let mut element = MsgBuilder::new(
        (NFNL_SUBSYS_NFTABLES << 8) | op,
        flags,
        seq,
        &[family, 0, 0, 0],
    );
    element
        .attr_str(NFTA_SET_ELEM_LIST_TABLE, table)
        .attr_str(NFTA_SET_ELEM_LIST_SET, set)
        .begin_nested(NFTA_SET_ELEM_LIST_ELEMENTS)
        .begin_nested(NFTA_LIST_ELEM)
        .begin_nested(NFTA_SET_ELEM_KEY)
        .attr(NFTA_DATA_VALUE, key)
        .end_nested()
        .end_nested()
        .end_nested();
    let mut out =
        MsgBuilder::new(NFNL_MSG_BATCH_BEGIN, 0, seq.wrapping_sub(1), &batch_gen).finish()?;
    out.extend(element.finish()?);
    out.extend(MsgBuilder::new(NFNL_MSG_BATCH_END, 0, seq.wrapping_add(1), &batch_gen).finish()?);
    Ok(out)
}

/// An nf_tables netlink socket for set elements, in the network namespace of the thread
/// that opened it.
pub struct SetElements {
    nl: Requester,
}

impl SetElements {
    pub fn open() -> io::Result<SetElements> {
        Ok(SetElements {
            nl: Requester::open(NETLINK_NETFILTER)?,
        })
    }

    /// Adds `key` to `family table`'s set `set` (already there is fine).
    pub fn add(&mut self, family: u8, table: &str, set: &str, key: &[u8]) -> io::Result<()> {
        self.change(true, family, table, set, key)
    }

    /// Deletes `key` from the set (`NotFound` when it was not there).
    pub fn del(&mut self, family: u8, table: &str, set: &str, key: &[u8]) -> io::Result<()> {
        self.change(false, family, table, set, key)
    }

    fn change(
        &mut self,
        add: bool,
        family: u8,
        table: &str,
        set: &str,
        key: &[u8],
    ) -> io::Result<()> {
        // Three numbers per batch: begin, element, end; the element's is acknowledged.
        let seq = self.nl.next_seq();
        self.nl.next_seq();
        self.nl.next_seq();
        let batch = element_batch(seq, add, family, table, set, key)?;
        self.nl.transact(seq, &batch, |_| Ok(())).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{} element of set {table} {set}: {e}",
                    if add { "adding an" } else { "deleting an" }
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_names_family_table_and_set_and_carries_the_key_whole() {
        let key: Vec<u8> = (0..48).collect();
        let b = element_batch(7, true, NFPROTO_IPV6, "mip6d", "tunnels", &key).unwrap();
        let msgs = super::super::netlink::messages(&b).unwrap();
        assert_eq!(msgs.len(), 3);
        // The element message: family ip6, the names, and the 48 key bytes in one value.
        let e = &b[20..];
        assert_eq!(e[16], NFPROTO_IPV6);
        let find = |needle: &[u8]| e.windows(needle.len()).any(|w| w == needle);
        assert!(find(b"mip6d\0") && find(b"tunnels\0"));
        let mut value = (4u16 + 48).to_ne_bytes().to_vec();
        value.extend(NFTA_DATA_VALUE.to_ne_bytes());
        value.extend(&key);
        assert!(find(&value));
        let del = element_batch(7, false, NFPROTO_INET, "t", "s", &key[..16]).unwrap();
        assert_ne!(del, b);
    }
}
