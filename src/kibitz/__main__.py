from kibitz.cli.main import main

main()
