from worker.cli.entry import main

main()
