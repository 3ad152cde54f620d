from thoughttrace.cli.main import main

main()
