from nerve_cli.app import main

main()
