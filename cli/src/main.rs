fn main() {
    eprintln!("rill: the broker is not built yet");
    std::process::exit(2);
}
