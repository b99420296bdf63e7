from docservice.cli.main import main

main()
