def test_a_data_directory_with_trust_authentication_is_refused_with_the_way_out(tmp_path):
    """An older `invoke local` initialised PostgreSQL with trust on its socket."""
    from mlflow_platform.local import LocalPlatform, LocalPlatformError

    state = tmp_path / "state"
    data = state / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    tmp_path.chmod(0o755)
    local = LocalPlatform(state, progress=lambda _: None)
    with pytest.raises(LocalPlatformError) as refused:
        local.up()
    message = str(refused.value)
    assert f"{data / 'pg_hba.conf'} is not the platform's" in message
    assert "trust authentication" in message and "remove that directory" in message
    assert local.status() == {}  # nothing was started
