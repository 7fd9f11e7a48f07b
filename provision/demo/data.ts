// The demo's data: homes of several users, web files, databases — generated on the servers —,
// a day's changes, and a listing (path, type, size, sha256) to compare a restore with.
import type { LabHost } from '../lab/index.ts';

/** web1: three users with documents and photos, a web site; MariaDB `shop` is seeded separately. */
export const SEED_WEB1 = String.raw`set -e
for u in alice bob carol; do
  id -u "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"
  h=/home/$u
  mkdir -p "$h/Documents" "$h/Photos" "$h/.cache"
  for i in $(seq 1 40); do printf '%s note %s\n%s\n' "$u" "$i" "$(head -c 600 /dev/urandom | base64 -w 76)" > "$h/Documents/note-$i.txt"; done
  for i in 1 2 3 4; do head -c $((200000 + i * 50000)) /dev/urandom > "$h/Photos/IMG_000$i.jpg"; done
  head -c 100000 /dev/urandom > "$h/.cache/thumbs.db"
  chown -R "$u:$u" "$h"; chmod 750 "$h"
done
mkdir -p /var/www/site/assets /var/www/site/cache
for i in $(seq 1 30); do printf '<html><body><h1>Page %s</h1>%s</body></html>\n' "$i" "$(head -c 300 /dev/urandom | base64 -w 0)" > /var/www/site/page-$i.html; done
head -c 400000 /dev/urandom > /var/www/site/assets/app.js
head -c 50000 /dev/urandom > /var/www/site/cache/tmp.bin
chown -R www-data:www-data /var/www/site; chmod -R g+rX,o-rwx /var/www/site
`;

/** db1: an application's files; PostgreSQL `shop` is seeded separately. */
export const SEED_DB1 = String.raw`set -e
mkdir -p /srv/app/uploads /srv/app/config
for i in $(seq 1 60); do head -c $((1000 + i * 700)) /dev/urandom > /srv/app/uploads/file-$i.bin; done
printf 'listen = 8080\nworkers = 4\n' > /srv/app/config/app.toml
`;

/** A day of changes: edits, new files, deletions, new rows. */
export const CHANGE_WEB1 = String.raw`set -e
printf 'alice note 1, edited\n' > /home/alice/Documents/note-1.txt
rm -f /home/bob/Documents/note-2.txt /home/bob/Documents/note-3.txt
head -c 300000 /dev/urandom > /home/carol/Photos/IMG_0005.jpg; chown carol:carol /home/carol/Photos/IMG_0005.jpg
printf '<html><body>new page</body></html>\n' > /var/www/site/page-31.html; chown www-data:www-data /var/www/site/page-31.html
mariadb shop -e "INSERT INTO item(name) VALUES ('quince'),('fig')"
`;
export const CHANGE_DB1 = String.raw`set -e
head -c 5000 /dev/urandom > /srv/app/uploads/file-61.bin
rm -f /srv/app/uploads/file-1.bin
printf 'listen = 8080\nworkers = 8\n' > /srv/app/config/app.toml
runuser -u postgres -- psql -q -d shop -c "INSERT INTO item(name) VALUES ('quince')"
`;

/**
 * "type path size sha256" for every file, link and folder under dir (sorted), optionally skipping
 * sub-paths (excludes). Paths are relative to dir.
 */
export const LISTING = String.raw`set -e
cd "$1"; shift
find . -mindepth 1 \( -type f -printf 'f %P %s ' -exec sh -c 'sha256sum < "$1" | cut -d" " -f1' sh {} \; \) -o \( -type l -printf 'l %P %l\n' \) -o \( -type d -printf 'd %P\n' \) | LC_ALL=C sort
`;

export async function listingOn(host: LabHost, dir: string): Promise<string[]> {
  return (await host.exec(['bash', '-c', LISTING, 'listing', dir])).stdout.split('\n').filter(Boolean);
}

/** Drops entries under excluded relative patterns (".cache/" anywhere, "cache/" …). */
export function withoutExcluded(lines: string[], excludes: string[]): string[] {
  return lines.filter((l) => {
    const p = l.split(' ')[1] ?? '';
    return !excludes.some((x) => {
      const dir = x.replace(/^\*\//, '').replace(/\/$/, '');
      return p === dir || p.startsWith(`${dir}/`) || p.includes(`/${dir}/`) || p.endsWith(`/${dir}`);
    });
  });
}
