from etcdsec.cli import main

if __name__ == "__main__":  # process workers (scan --workers) import the main module again
    raise SystemExit(main())
