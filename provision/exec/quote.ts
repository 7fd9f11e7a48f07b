// POSIX shell quoting for the one place argv must become a string: the SSH protocol carries a
// command line, which the remote login shell parses. Single quotes work in every POSIX shell
// (dash included), unlike bash's $'…' form, so any byte sequence arrives unchanged.
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellJoin(argv: string[]): string {
  return argv.map(shellQuote).join(' ');
}
