"""textfile.py - a watcher's counters as a file for node_exporter's
textfile collector: rewritten atomically at every change, so a scrape
never reads half a file.  A file that cannot be written is said, not
fatal (the watch goes on)."""
import os


class Counters:
    """Counters by outcome (RESULTS), written to PATH ("": nowhere) as the
    lines of render(counts); SAY(message) tells a failed write."""

    def __init__(self, path, results, render, say):
        self.path, self.render, self.say = path, render, say
        self.counts = dict.fromkeys(results, 0)
        self.write()

    def count(self, result):
        self.counts[result] += 1
        self.write()

    def write(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("\n".join(self.render(self.counts)) + "\n")
            os.replace(tmp, self.path)
        except OSError as e:
            self.say(f"metrics {self.path}: {e.strerror or e}")
