//! Worked examples shown at the end of each command's `--help`, taken from
//! the README's, so that they can be found where the flags are.

/// `weir --help`.
pub const WEIR: &str = "\
Examples:
  weir topics create events --partitions 6
  printf 'user-1\\tlogin\\nuser-2\\tlogout\\n' | weir produce -t events -K '\\t'
  weir consume -t events -e                 # every record, then exit (kcat -C -e)
  weir count -t logs -g errors --by json:/level --window 1m
  weir cluster                              # brokers, controller, topics (kcat -L)

`weir COMMAND --help` shows each command's own examples.";

/// `weir topics --help`.
pub const TOPICS: &str = "\
Examples:
  weir topics list
  weir topics create orders --partitions 6 --config cleanup.policy=compact --config retention.ms=-1
  weir topics describe orders                 # leader, replicas, ISR, earliest/latest offset, configs
  weir topics describe orders --output json   # the same as one JSON document
  weir topics delete orders";

/// `weir produce --help`.
pub const PRODUCE: &str = "\
Examples:
  printf 'user-1\\tlogin\\nuser-2\\tlogout\\n' | weir produce -t events -K '\\t'
  weir produce -t events --create-topic --partitions 6 access.log   # files, read in order
  weir produce -t events --format json --report < records.jsonl    # one JSON outcome per record
  weir produce -t prices -K : --transactional-id prices-load < prices.txt
  weir produce -t events -k fixed-key -H source=edge-7 --compression zstd < lines.txt";

/// `weir consume --help`.
pub const CONSUME: &str = "\
Examples:
  weir consume -t events -e                          # every record, then exit (kcat -C -e)
  weir consume -t events --from -10 -f '{partition}:{offset} {key}={value}\\n'
  weir consume -t events --from 15m --json | jq .    # the last 15 minutes, as JSON lines
  weir consume -t logs --where /level=ERROR --grep-key '^web'
  weir consume -t events -e --null NULL -f '{date:%F %T} {timestamp_type} {key} {value_length}'
  weir consume -t events -g billing                  # resume where group billing stopped";

/// `weir count --help`.
pub const COUNT: &str = "\
Examples:
  weir count -t logs -g errors --by json:/level --window 1m         # per level and minute
  weir count -t logs -g svc --by key --to-topic counts --no-stdout  # running totals per key
  weir count -t logs -e --by 'regex:^\\S+ (\\w+)' --window 5m --json  # what is in the topic now";

/// `weir agg --help`.
pub const AGG: &str = "\
Examples:
  weir agg -t access -g dash --by json:/service --window 1m \\
      --agg count --agg p99:json:/ms --agg distinct:json:/user
  weir agg -t access -g dash5 --by json:/service --window 5m --hop 1m --agg avg:json:/latency_ms
  weir agg -t clicks -g visits --by json:/user --session-gap 30m --agg count --agg max:json:/ts
  weir agg -t logs -e --by json:/service --by json:/level --agg count   # a composite key";

/// `weir pipe --help`.
pub const PIPE: &str = "\
Examples:
  weir pipe -t logs --to errors -g errs --where /level=ERROR --key-from json:/service";

/// `weir offsets --help`.
pub const OFFSETS: &str = "\
Examples:
  weir offsets groups
  weir offsets show -g billing        # committed offset, high watermark and lag per partition
  weir offsets set -g billing -t events --to @2026-11-24T08:00:00Z
  weir offsets set -g billing -t events --to -10 -p 0,1 --dry-run
  weir offsets delete -g billing -t events
  weir offsets at -t events @2026-11-24T08:00:00Z   # first offset at or after, per partition (kcat -Q)
  weir offsets at -t events 15m";

/// `weir bench --help`.
pub const BENCH: &str = "\
Examples:
  weir bench produce -n 1000000 -s 100 --partitions 6
  weir bench consume -n 1000000 --partitions 6
  weir bench latency --rate 10000 --json";

/// `weir config --help`.
pub const CONFIG: &str = "\
Examples:
  weir config show                       # the settings in force and where each came from
  weir --profile prod config show        # a profile of ~/.config/weir/config.toml
  weir --config-file ./kafka.toml --profile staging config show";

/// `weir cluster --help`.
pub const CLUSTER: &str = "\
Examples:
  weir cluster
  weir cluster --output json | jq -r '.brokers[].address'
  weir cluster --topics -t orders
  weir cluster --topics --output json | jq '.topic_partitions[].partitions[] | select(.leader == null)'
  weir -b kafka.example.com:9093 --tls cluster";

/// `weir completions --help`.
pub const COMPLETIONS: &str = "\
Examples:
  weir completions bash > /etc/bash_completion.d/weir
  weir completions zsh > \"${fpath[1]}/_weir\"
  weir completions fish > ~/.config/fish/completions/weir.fish
  weir completions powershell >> $PROFILE";

/// `weir manpage --help`.
pub const MANPAGE: &str = "\
Examples:
  weir manpage > /usr/local/share/man/man1/weir.1
  weir manpage | man -l -";

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::cli::Cli;

    /// Every example parses as the command line it shows, so that the
    /// help never teaches a flag weir does not have.
    #[test]
    fn every_example_parses() {
        let cli = Cli::command();
        let mut checked = 0;
        let commands = std::iter::once(&cli).chain(cli.get_subcommands());
        for command in commands {
            let help = command.get_after_help().map(ToString::to_string);
            let help = help.unwrap_or_else(|| panic!("weir {}: no examples", command.get_name()));
            let mut lines = help.lines().peekable();
            while let Some(line) = lines.next() {
                let Some(start) = line.find("weir ") else {
                    continue;
                };
                if !line.starts_with("  ") {
                    continue;
                }
                let mut text = line[start..].to_owned();
                while text.ends_with('\\') {
                    text.pop();
                    text.push_str(lines.next().expect("a continued line"));
                }
                // Up to a pipe, a redirection or a comment.
                let end = text.find(['|', '<', '>', '#']).unwrap_or(text.len());
                let words = split_words(&text[..end]);
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("{words:?}: {e}");
                }
                checked += 1;
            }
        }
        assert!(checked > 30, "only {checked} examples");
    }

    /// Shell words with '…' quoting, as the examples write them.
    fn split_words(s: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        let mut in_word = false;
        for c in s.chars() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    in_word = true;
                }
                c if c.is_whitespace() && !quoted => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            words.push(word);
        }
        words
    }
}
