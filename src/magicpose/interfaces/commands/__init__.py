"""One module per `magicpose` subcommand; each exposes `register(subparsers)`."""
