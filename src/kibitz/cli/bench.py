import typer

bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
