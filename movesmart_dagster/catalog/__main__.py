from movesmart_dagster.cli import cli

if __name__ == "__main__":
    import sys

    cli(["catalog", *sys.argv[1:]])
