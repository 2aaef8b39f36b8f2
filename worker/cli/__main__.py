from worker.cli.main import app

app(prog_name="evalq")
