//! Parse and emit rate of a Binding Update with options (the message a home agent and a
//! correspondent handle most), against a baseline measured in the same run: verifying the
//! Internet checksum of the same bytes, the least work any receiver does per message.
//! Ratios to the baseline survive noisy machines; absolute numbers are printed too.
//!
//!     cargo bench --bench wire

use std::hint::black_box;
use std::net::Ipv6Addr;

use mip6d::wire::checksum;
use mip6d::wire::mh::{BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use mip6d::wire::packet;
use mip6d::wire::proto;

#[path = "support/mod.rs"]
mod support;
use support::Case;

fn main() {
    let src: Ipv6Addr = "2001:db8:1::1234".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:3::1".parse().unwrap();
    let bu = MhRepr {
        message: Message::BindingUpdate {
            sequence: 0x1234,
            flags: BuFlags {
                a: true,
                ..BuFlags::default()
            },
            lifetime_units: 105,
        },
        options: vec![
            MobilityOption::AlternateCareOf("2001:db8:2::abcd".parse().unwrap()),
            MobilityOption::NonceIndices {
                home: 1,
                care_of: 2,
            },
            MobilityOption::BindingAuthData([0xf3; 12]),
        ],
    };
    let bytes = bu.to_bytes(&src, &dst);
    let mut buf = vec![0u8; bu.buffer_len()];

    let mut full = vec![0u8; 40];
    packet::Ipv6Header {
        traffic_class: 0,
        flow_label: 0,
        payload_len: bytes.len() as u16,
        next_header: proto::MOBILITY,
        hop_limit: 64,
        src,
        dst,
    }
    .emit(&mut full);
    full.extend_from_slice(&bytes);

    let cases: Vec<(&str, Case)> = vec![
        (
            "baseline: checksum verify",
            Box::new(|| {
                black_box(checksum::verify(
                    black_box(&src),
                    &dst,
                    proto::MOBILITY,
                    black_box(&bytes),
                ));
            }),
        ),
        (
            "BU parse (structure)",
            Box::new(|| {
                black_box(MhRepr::parse(black_box(&bytes)).ok());
            }),
        ),
        (
            "BU parse + checksum",
            Box::new(|| {
                black_box(MhRepr::parse_checked(black_box(&bytes), &src, &dst).ok());
            }),
        ),
        (
            "BU emit + checksum",
            Box::new(|| {
                black_box(&bu).emit(black_box(&mut buf), &src, &dst);
            }),
        ),
        (
            "whole packet walk",
            Box::new(|| {
                black_box(packet::parse(black_box(&full)).ok());
            }),
        ),
    ];

    support::run_table("msg", cases);
    println!(
        "(BU: {} bytes with Alternate CoA, Nonce Indices, BAD)",
        bytes.len()
    );
}
