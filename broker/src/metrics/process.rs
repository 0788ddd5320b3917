//! The process's own figures, read from `/proc/self` when scraped (Linux; elsewhere they are left out).

/// Each `None` when it could not be read.
#[derive(Debug, Default)]
pub struct ProcessStats {
    pub resident_bytes: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
    pub start_time_s: Option<f64>,
    pub cpu_s: Option<f64>,
}

pub fn read() -> ProcessStats {
    // SAFETY: sysconf only reads system constants.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // SAFETY: as above.
    let page_bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    let statm = std::fs::read_to_string("/proc/self/statm").ok();
    let resident_bytes = statm
        .as_deref()
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|pages| pages.parse::<f64>().ok())
        .map(|pages| pages * page_bytes);
    let open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|dir| dir.count() as f64);
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only into `limit`.
    let max_fds = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur as f64);
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // Fields after the command name, which is in parentheses and may hold spaces: state is field 3, utime 14,
    // stime 15, starttime 22 (in ticks since boot).
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    let cpu_s = field(14).zip(field(15)).map(|(user, system)| (user + system) / ticks_per_s);
    let boot_time_s = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines().find_map(|line| line.strip_prefix("btime ")).and_then(|v| v.trim().parse::<f64>().ok())
    });
    let start_time_s = field(22).zip(boot_time_s).map(|(ticks, boot)| boot + ticks / ticks_per_s);
    ProcessStats { resident_bytes, open_fds, max_fds, start_time_s, cpu_s }
}
