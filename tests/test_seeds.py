from simsurvey.seeds import derive_seed


def test_derive_seed_is_stable_and_distinct():
    # Pinned value: a change here shifts every run's design and bootstrap.
    assert derive_seed(1, "design") == derive_seed(1, "design")
    assert derive_seed(1, "design") != derive_seed(1, "analysis")
    assert derive_seed(1, "design") != derive_seed(2, "design")
    assert 0 <= derive_seed(123, "x", 4) < 2**63


def test_derive_seed_pinned():
    assert derive_seed(1, "design") == 6467698928209065607
