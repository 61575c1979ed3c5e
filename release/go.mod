module github.com/gocarmine/mq/release

go 1.26.0
