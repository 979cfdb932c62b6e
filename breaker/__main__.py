from breaker.cli import main

main()
