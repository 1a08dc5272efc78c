with model.generate("The Eiffel Tower is in the city of", max_new_tokens=2) as tracer:
    vals = list().save()
    for step in tracer.iter[0:4]:
        print("step", step)
        vals.append(model.transformer.h[0].output[0][0, -1, 0])
        print("after", step)
print(len(vals))
