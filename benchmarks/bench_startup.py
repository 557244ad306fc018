"""Start-up time of the light commands: `ehrqa --help`, `ehrqa validate` on the bundled sample.

Target: well under a second each. Prints the median of 5 runs.
"""

import statistics
import subprocess
import sys
import time

COMMANDS = [["--help"], ["validate"], ["show"]]


def main() -> None:
    for args in COMMANDS:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ehrqa.cli", *args], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        print(f"ehrqa {' '.join(args):<10} median {statistics.median(times):.3f} s  (min {min(times):.3f} s)")


if __name__ == "__main__":
    main()
