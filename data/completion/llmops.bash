# Bash completion for the llmops programs: llm-prep, llm-tune, llm-gen, llm-eval, llm-pack,
# llm-serve, llm-monitor.  One function serves them all; the file is installed once per
# program name in bash-completion's completions folder, which loads it by command name.
#
# Everything the function knows comes from the program being completed, so a new verb or
# option needs no change here: `PROG [VERB...] --completion-helper spec` prints the verbs, the
# words a verb takes first ("tokenizer train", "runs show"), and every option with its
# argument and choices (cmd/cli.c says the format).  It completes verbs after the program,
# nested verbs (llm-gen batch export), options after a verb, the values of choice options,
# files and folders where an option or operand names one, and files for operands.

# _llmops_load PROG [VERB...]: read the spec of that command into the caller's variables
# verbs, subverbs, opts, arg, choices, short and is_verb.
_llmops_load()
{
	local kind name s a c line prefix=
	(($# > 1)) && prefix="${*:2} "
	verbs=() subverbs=() opts=() arg=() choices=() short=() is_verb=0
	while IFS= read -r line; do
		IFS=$'\t' read -r kind name s a c <<<"$line"
		case $kind in
		verb)
			# A nested table names its verbs in full ("batch export").
			verbs+=("${name#"$prefix"}") ;;
		subverb) subverbs+=("$name") ;;
		opt)
			opts+=("$name")
			arg[$name]=$a
			choices[$name]=$c
			[[ $s != - ]] && short[$s]=$name
			[[ $name == --completion-helper ]] && is_verb=1 ;;
		esac
	done < <("$@" --completion-helper spec 2>/dev/null)
}

# _llmops_values OPTION CUR: complete the argument of OPTION.
_llmops_values()
{
	local o=$1 cur=$2
	if [[ ${choices[$o]-} && ${choices[$o]} != - ]]; then
		# shellcheck disable=SC2207
		COMPREPLY=($(compgen -W "${choices[$o]//|/ }" -- "$cur"))
		return
	fi
	case ${arg[$o]-} in
	DIR | *-DIR | *DIR)
		compopt -o filenames 2>/dev/null
		local IFS=$'\n'
		# shellcheck disable=SC2207
		COMPREPLY=($(compgen -d -- "$cur")) ;;
	FILE | *FILE | *-FILE | REPORT | KEY | PREFIX | PATTERN | PATH | REF | MODEL | ARTIFACT)
		_llmops_files "$cur" ;;
	*) COMPREPLY=() ;; # a number, a name, a duration: nothing to offer
	esac
}

_llmops_files()
{
	compopt -o filenames 2>/dev/null
	local IFS=$'\n'
	# shellcheck disable=SC2207
	COMPREPLY+=($(compgen -f -- "$1"))
}

_llmops()
{
	local prog=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]-}
	local -a words=() path=() verbs=() subverbs=() opts=()
	local -A arg=() choices=() short=()
	local i w cword=0 glue=0 is_verb=0 operands=0 dashdash=0 helpverb=0
	COMPREPLY=()
	[[ $prog == "~/"* ]] && prog=$HOME/${prog#"~/"}

	# bash splits "--on-error=skip" into three words at the "=": join them again.
	for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $w == = && ${#words[@]} -gt 1 && ${words[-1]} == --* && ${words[-1]} != *=* ]]; then
			words[-1]+==
			glue=1
		elif ((glue)); then
			words[-1]+=$w
			glue=0
		else
			words+=("$w")
		fi
		((i == COMP_CWORD)) && cword=$((${#words[@]} - 1))
	done
	cur=${words[cword]-}

	_llmops_load "$prog"
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		if ((dashdash)); then
			((operands++))
			continue
		fi
		case $w in
		--)
			dashdash=1
			continue ;;
		--*=*) continue ;;
		-) ;; # standard input: an operand
		-*)
			# An option's argument is the next word, not an operand.
			local o=$w
			[[ $o != --* ]] && o=${short[$o]-}
			[[ $o && ${arg[$o]-} && ${arg[$o]} != - ]] && ((i++))
			continue ;;
		esac
		if ((operands == 0)); then
			local v found=0
			for v in "${verbs[@]}"; do [[ $v == "$w" ]] && found=1; done
			if ((found)); then
				path+=("$w")
				_llmops_load "$prog" "${path[@]}"
				continue
			fi
			for v in "${subverbs[@]}"; do [[ $v == "$w" ]] && found=1; done
			if ((found)); then
				subverbs=()
				verbs=()
				continue
			fi
			if [[ $w == help && ${#path[@]} -eq 0 && $is_verb == 0 ]]; then
				helpverb=1
				((operands++))
				continue
			fi
		fi
		((operands++))
	done

	# The value of an option: "--opt=VALUE" or "--opt VALUE".
	if [[ $cur == --*=* && $dashdash == 0 ]]; then
		local o=${cur%%=*}
		_llmops_values "$o" "${cur#*=}"
		# bash replaces only what follows the "=" when it split the word there.
		if [[ ${COMP_WORDS[COMP_CWORD]-} == --*=* ]]; then
			for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]=$o=${COMPREPLY[i]}; done
		fi
		return 0
	fi
	if ((cword > 1 && !dashdash)); then
		local p=${words[cword - 1]}
		[[ $p == -* && $p != --*=* && $p != --* ]] && p=${short[$p]-}
		if [[ $p == --* && $p != *=* && ${arg[$p]-} && ${arg[$p]} != - ]]; then
			_llmops_values "$p" "$cur"
			return 0
		fi
	fi
	if [[ $cur == -* && $dashdash == 0 ]]; then
		# shellcheck disable=SC2207
		COMPREPLY=($(compgen -W "${opts[*]}" -- "$cur"))
		return 0
	fi
	if ((helpverb && operands == 1)); then
		# shellcheck disable=SC2207
		COMPREPLY=($(compgen -W "${verbs[*]}" -- "$cur"))
		return 0
	fi
	if ((operands == 0 && ${#subverbs[@]} > 0)); then
		# shellcheck disable=SC2207
		COMPREPLY=($(compgen -W "${subverbs[*]}" -- "$cur"))
		return 0
	fi
	if ((operands == 0 && ${#verbs[@]} > 0)); then
		# shellcheck disable=SC2207
		COMPREPLY=($(compgen -W "${verbs[*]}" -- "$cur"))
		# A program that runs without a verb (llm-gen) also takes files here.
		((is_verb)) && _llmops_files "$cur"
		return 0
	fi
	((is_verb)) && _llmops_files "$cur"
	return 0
}

complete -F _llmops llm-prep llm-tune llm-gen llm-eval llm-pack llm-serve llm-monitor
