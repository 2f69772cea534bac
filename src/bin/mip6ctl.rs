//! The operator's command-line view into Mobile IPv6 traffic and a running mip6d.

fn main() -> std::process::ExitCode {
    mip6d::ctl::main()
}
