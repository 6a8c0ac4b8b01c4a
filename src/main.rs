fn main() -> std::process::ExitCode {
    exhibit::cli::main()
}
