module github.com/tuxscope/tuxscope/tools

go 1.26.8
