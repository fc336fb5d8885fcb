"""refnet's bench (`make bench`) and chaos run (`make chaos`): see bench/README.md."""
