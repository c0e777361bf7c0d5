"""Run the model tests on one intra-op thread.

They check correctness, not speed; on a shared 2-core runner a second OpenMP thread mostly waits at
barriers for a busy core and made these tests several times slower, so one thread keeps their time
predictable. The previous setting is restored afterwards.
"""

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
