from minimind_hf.cli.export import main

if __name__ == "__main__":
    main()
