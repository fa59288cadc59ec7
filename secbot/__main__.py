from secbot.cli import main

main()
