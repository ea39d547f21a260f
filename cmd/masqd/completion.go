package main

import (
	"fmt"
	"io"
	"strings"
)

// The words the completion scripts offer. TestCompletionFlags keeps the flag lists equal to the commands'
// flags.
const (
	complCommands     = "explain status check help completion"
	complShells       = "bash zsh fish"
	complConfigFlags  = "--config --nomasq-all-reserved-ranges --enable-ipv6 --random-fully --to-ports --cluster-cidr --flush-conntrack"
	complRootFlags    = complConfigFlags + " --masq-chain --mode --migrate-from-chain --v --logtostderr --dry-run --once --cleanup --version --http-address --configmap --kubeconfig --log-level --log-format --node-name --discover-pod-cidrs"
	complExplainFlags = complConfigFlags + " --kernel --output --discover-pod-cidrs --kubeconfig"
	complStatusFlags  = complConfigFlags + " --output --masq-chain --http-address --discover-pod-cidrs --kubeconfig"
	complCheckFlags   = complConfigFlags + " --node --node-pod-cidr --kubeconfig"
)

const completionUsage = `Usage: masqd completion bash|zsh|fish

Prints a script that completes masqd's commands, flags, flag values and files in that shell:

  bash   source <(masqd completion bash)      # or save it as /etc/bash_completion.d/masqd
  zsh    source <(masqd completion zsh)       # or save it as _masqd in a directory of $fpath
  fish   masqd completion fish | source       # or save it as ~/.config/fish/completions/masqd.fish

`

// completionMain is `masqd completion SHELL`.
func completionMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		io.WriteString(stdout, completionUsage)
		return 0
	}
	if len(args) != 1 {
		fmt.Fprintf(stderr, "masqd completion: want one shell: bash, zsh or fish\n")
		return 2
	}
	var script string
	switch args[0] {
	case "bash":
		script = bashCompletion
	case "zsh":
		script = zshCompletion
	case "fish":
		script = fishCompletion()
	default:
		fmt.Fprintf(stderr, "masqd completion: no completion for %q: want bash, zsh or fish\n", args[0])
		return 2
	}
	io.WriteString(stdout, script)
	return 0
}

// bashValueCases are the flags whose values the scripts complete, as bash case arms.
const bashValueCases = `	--config | --kubeconfig) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--mode) COMPREPLY=($(compgen -W "auto nftables iptables" -- "$cur")); return ;;
	--log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return ;;
	--log-format) COMPREPLY=($(compgen -W "auto text json" -- "$cur")); return ;;
	--output) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
	--to-ports | --cluster-cidr | --masq-chain | --migrate-from-chain | --http-address | --configmap | --v | --node-name | --node | --node-pod-cidr) return ;;
`

const bashCompletion = `# bash completion for masqd: source <(masqd completion bash)
_masqd() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= words i
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		explain | status | check | help | completion) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	case $prev in
` + bashValueCases + `	esac
	case $cmd in
	"") if [[ $cur == -* ]]; then words="` + complRootFlags + `"; else words="` + complCommands + `"; fi ;;
	explain) words="` + complExplainFlags + `" ;;
	status) words="` + complStatusFlags + `" ;;
	check)
		if [[ $cur != -* ]]; then
			COMPREPLY=($(compgen -f -- "$cur"))
			return
		fi
		words="` + complCheckFlags + `" ;;
	help) words="` + complCommands + `" ;;
	completion) words="` + complShells + `" ;;
	esac
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _masqd masqd
`

const zshCompletion = `#compdef masqd
# zsh completion for masqd: source <(masqd completion zsh), or save as _masqd in a directory of $fpath.
_masqd() {
	local cmd= i
	for ((i = 2; i < CURRENT; i++)); do
		case ${words[i]} in
		explain|status|check|help|completion) cmd=${words[i]}; break ;;
		esac
	done
	case ${words[CURRENT-1]} in
	--config|--kubeconfig) _files; return ;;
	--mode) compadd -- auto nftables iptables; return ;;
	--log-level) compadd -- debug info warn error; return ;;
	--log-format) compadd -- auto text json; return ;;
	--output) compadd -- text json; return ;;
	--to-ports|--cluster-cidr|--masq-chain|--migrate-from-chain|--http-address|--configmap|--v|--node-name|--node|--node-pod-cidr) return ;;
	esac
	case $cmd in
	'') if [[ $PREFIX == -* ]]; then compadd -- ` + complRootFlags + `; else compadd -- ` + complCommands + `; fi ;;
	explain) compadd -- ` + complExplainFlags + ` ;;
	status) compadd -- ` + complStatusFlags + ` ;;
	check) if [[ $PREFIX == -* ]]; then compadd -- ` + complCheckFlags + `; else _files; fi ;;
	help) compadd -- ` + complCommands + ` ;;
	completion) compadd -- ` + complShells + ` ;;
	esac
}
if [[ $funcstack[1] == _masqd ]]; then
	_masqd "$@"
else
	compdef _masqd masqd
fi
`

// fishCompletion is the fish script: one complete line per word.
func fishCompletion() string {
	var b strings.Builder
	b.WriteString("# fish completion for masqd: masqd completion fish | source\n")
	b.WriteString("complete -c masqd -f\n")
	fmt.Fprintf(&b, "complete -c masqd -n __fish_use_subcommand -a '%s'\n", complCommands)
	fmt.Fprintf(&b, "complete -c masqd -n '__fish_seen_subcommand_from help' -a '%s'\n", "explain status check completion")
	fmt.Fprintf(&b, "complete -c masqd -n '__fish_seen_subcommand_from completion' -a '%s'\n", complShells)
	b.WriteString("complete -c masqd -n '__fish_seen_subcommand_from check' -F\n")
	values := map[string]string{
		"config": "-r -F", "kubeconfig": "-r -F",
		"mode": "-x -a 'auto nftables iptables'", "log-level": "-x -a 'debug info warn error'",
		"log-format": "-x -a 'auto text json'", "output": "-x -a 'text json'",
		"to-ports": "-x", "cluster-cidr": "-x", "masq-chain": "-x", "migrate-from-chain": "-x", "http-address": "-x", "configmap": "-x", "v": "-x",
		"node-name": "-x", "node": "-x", "node-pod-cidr": "-x",
	}
	for _, c := range []struct{ cond, flags string }{
		{"__fish_use_subcommand", complRootFlags},
		{"'__fish_seen_subcommand_from explain'", complExplainFlags},
		{"'__fish_seen_subcommand_from status'", complStatusFlags},
		{"'__fish_seen_subcommand_from check'", complCheckFlags},
	} {
		for _, f := range strings.Fields(c.flags) {
			name := strings.TrimPrefix(f, "--")
			line := fmt.Sprintf("complete -c masqd -n %s -l %s", c.cond, name)
			if v := values[name]; v != "" {
				line += " " + v
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
