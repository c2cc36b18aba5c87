# Tidy scdoc's output for mandoc -T lint: drop the paragraph macros that do nothing (right
# after a heading, or right before a heading or another paragraph), and move a paragraph break
# that ends an indented block to after the block, where it separates list entries.
{
	if ($0 == ".P") {
		held = 1
		next
	}
	if (held && $0 ~ /^\.RE( |$)/) {
		print
		prev = $0
		next
	}
	if (held && $0 !~ /^\.(SH|SS|P|PP)( |$)/ && prev !~ /^\.(SH|SS|TH)( |$)/)
		print ".P"
	held = 0
	print
	prev = $0
}
