//! Container stdio: pipes, the pty master received over a console socket, raw terminal mode.
