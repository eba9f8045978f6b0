from carerelay.cli import main

main()
