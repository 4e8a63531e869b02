from relay_context.cli import main

main()
