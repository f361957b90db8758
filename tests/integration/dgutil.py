"""Shared by the Python integration tests: a dgramd started on a config (its
listeners on port 0, read back from the ready file; woken by tests/dg-wait,
never a sleep) and named checks counted into the DG-RESULT line dev.sh sums."""
import json
import os
import shutil
import subprocess
import tempfile

BUILD = os.environ.get("DG_BUILDDIR", ".")


class Checks:
    """check() prints "ok NAME" or "FAIL NAME DETAIL"; result() prints the
    DG-RESULT line and returns the exit status."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok " + name)
        else:
            self.failed += 1
            print("FAIL %s %s" % (name, detail))

    def result(self):
        print("DG-RESULT passed=%d failed=%d" % (self.passed, self.failed))
        return 1 if self.failed else 0


class Daemon:
    """dgramd on config (a dict, or text as given) in a temporary directory.
    ports: listener name -> its port; port: the first listener's. Raises
    RuntimeError with the log if it does not start."""

    def __init__(self, config=None, text=None, prefix="dgtest"):
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        conf = os.path.join(self.tmp, "c.json")
        with open(conf, "w") as f:
            if text is not None:
                f.write(text)
            else:
                json.dump(config, f)
        ready = os.path.join(self.tmp, "ready")
        self.log = open(os.path.join(self.tmp, "log"), "w+")
        self.final = ""
        self.proc = subprocess.Popen([os.path.join(BUILD, "dgramd"), "-c", conf, "-P",
                                      os.path.join(BUILD, "plugins/.libs"), "-r", ready],
                                     stdout=self.log, stderr=self.log)
        waited = subprocess.run([os.path.join(BUILD, "tests/dg-wait"), "-t", "20000",
                                 "-p", str(self.proc.pid), ready])
        if waited.returncode != 0:
            text = self.logtext()
            self.stop()
            raise RuntimeError("dgramd did not start: " + text)
        self.ports = {}
        with open(ready) as f:
            for line in f:
                name, addr = line.split()[:2]
                if not name.startswith("@"):
                    self.ports.setdefault(name, int(addr.rsplit(":", 1)[1]))
        self.port = next(iter(self.ports.values()))

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        """SIGTERM, wait, keep the log (final) and remove the directory."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=20)
        self.final = self.logtext()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.final

    def stats(self, listener):
        """The counters of the last stats line logged for listener (call
        stop() first): name -> int."""
        lines = [l for l in self.final.splitlines() if "stats listener=%s " % listener in l]
        out = {}
        for f in (lines[-1].split() if lines else []):
            k, _, v = f.partition("=")
            if v.isdigit():
                out[k] = int(v)
        return out
