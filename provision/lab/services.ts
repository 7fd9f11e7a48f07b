// Database daemons inside a lab host, started directly (no systemd, no pg_ctlcluster, which
// idles ~2.4 s after the server is ready) and polled until they answer.
/** What starting a service needs of a lab host (host.ts starts the services: no import back). */
interface ServiceHost {
  exec(argv: string[]): Promise<unknown>;
}

// Closes fds > 2 and detaches the daemon (setsid, stdio to a log) so it never holds the
// test runner's pipes: otherwise exec() would wait for EOF until the host dies.
const CLOSE_FDS = 'for f in /proc/self/fd/*; do n=${f##*/}; if [ "$n" -gt 2 ]; then exec {n}>&- 2>/dev/null || true; fi; done';

const MARIADB = `${CLOSE_FDS}
mariadb-admin ping >/dev/null 2>&1 && exit 0
install -d -o mysql -g mysql /run/mysqld
# O_DIRECT is not supported on tmpfs/overlay: use fsync.
setsid /usr/sbin/mariadbd --user=mysql --innodb-flush-method=fsync --skip-name-resolve \\
  </dev/null >/var/log/mariadbd.lab.log 2>&1 &
for i in $(seq 1500); do mariadb-admin ping >/dev/null 2>&1 && exit 0; sleep 0.02; done
cat /var/log/mariadbd.lab.log >&2; exit 1`;

const POSTGRES = `${CLOSE_FDS}
pg_isready -q && exit 0
install -d -o postgres -g postgres -m 2775 /run/postgresql
runuser -u postgres -- setsid /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main \\
  -c config_file=/etc/postgresql/15/main/postgresql.conf \\
  </dev/null >/var/log/postgresql/lab.log 2>&1 &
for i in $(seq 1500); do pg_isready -q && exit 0; sleep 0.02; done
cat /var/log/postgresql/lab.log >&2; exit 1`;

export async function startMariadbIn(host: ServiceHost): Promise<void> {
  await host.exec(['bash', '-c', MARIADB]);
}

export async function startPostgresIn(host: ServiceHost): Promise<void> {
  await host.exec(['bash', '-c', POSTGRES]);
}
