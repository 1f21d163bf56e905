import pytest

from perf import fixedrate

# Tests of the compiled fixed-rate loop: with HPBROKER_NO_JIT every fixed-rate run takes the interpreted one.
COMPILED = pytest.mark.skipif(not fixedrate.AVAILABLE, reason="HPBROKER_NO_JIT: the compiled loop is not used")
